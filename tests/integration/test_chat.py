"""`make chat` in a real terminal (tmux): line editing, slash commands, resume, errors, and how it
treats the API when it refuses (bad names, no server, no identity, throttling)."""

import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client import as_user
from local.chat import FIRST_POLL_SECONDS, MAX_POLL_SECONDS, poll_intervals
from local.dynamodb import ROOT, free_port

pytestmark = pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (apt-get install tmux)")
SCREEN_WAIT_SECONDS = 30


class Terminal:
    def __init__(self, name: str):
        self.name = name

    def type(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, count: int = 1) -> str:
        deadline = time.monotonic() + SCREEN_WAIT_SECONDS
        while time.monotonic() < deadline:
            if (screen := self.screen()).count(text) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} x{count} never showed:\n{self.screen()}")


@pytest.fixture
def chat(server_url, user, tmp_path):
    def open_chat(session: str, **env) -> Terminal:
        name = f"chat-{uuid.uuid4().hex[:8]}"
        # env: a value replaces the default, None leaves the variable unset.
        variables = {"ENDPOINT": server_url, "CHAT_USER": user, "SESSION": session, "HOME": str(tmp_path),
                     "PYTHONPATH": "functions:.", **env}
        settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items() if v is not None)
        # The pane stays after the chat exits, with its exit status, so that its last words can be read.
        command = f'env -u CHAT_USER {settings} {sys.executable} -m local.chat; echo "[chat exited: $?]"; sleep 600'
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", "-c", str(ROOT), command],
                       check=True)
        opened.append(name)
        return Terminal(name)

    opened = []
    yield open_chat
    for name in opened:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_a_chat_in_a_terminal(chat, api, user, reliability):
    # Given a chat on a new session
    terminal = chat("tour")
    terminal.wait_for("/help for commands")
    # When the user talks, recalls the line with the Up arrow, and uses commands
    terminal.type("remember that my city is Paris", "Enter")
    terminal.wait_for("memory write ok")
    terminal.type("hello there", "Enter")
    terminal.wait_for("you said: hello there")
    terminal.type("Up", "Enter")  # readline: the previous line again, not ^[[A
    terminal.wait_for("you said: hello there", count=2)
    for command in ("/help", "/facts", "/sessions", "/history"):
        terminal.type(command, "Enter")
    screen = terminal.wait_for("city = Paris")
    terminal.wait_for("  tour  (this one)")
    # Then the commands answered here, and only the three messages reached the model and the store
    assert "/session NAME" in screen and "^[[A" not in terminal.screen()
    said = [m["content"] for m in api.get("/sessions/tour/messages", headers=as_user(user)).json()["messages"]
            if m["role"] == "user" and isinstance(m["content"], str)]
    assert said == ["remember that my city is Paris", "hello there", "hello there"]
    terminal.type("/forget city", "Enter")
    terminal.wait_for("forgot city")
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {}}
    terminal.type("/quit", "Enter")
    reliability("Local server", "`make chat` in tmux: arrows, slash commands, facts", "commands never reached the model")


def test_resuming_a_session_shows_its_last_turns(chat, api, user):
    for n in range(5):
        api.post("/sessions/old/messages", json={"message": f"turn number {n}"}, headers=as_user(user))
    terminal = chat("old")
    screen = terminal.wait_for("/help for commands")
    assert "10 messages so far" in screen
    assert "you> turn number 4" in screen and "you> turn number 2" in screen and "turn number 1" not in screen


def test_errors_of_both_shapes_read_clearly(chat):
    # API Gateway's own 401 {"message"} (no identity) and the agent's 422 {"error", "message"}
    anonymous = chat("ok", CHAT_USER="")
    assert "None" not in anonymous.wait_for("! 401 unauthorized: Unauthorized")
    refused = chat("ok")
    refused.wait_for("/help for commands")
    refused.type("/forget Not-A-Key!", "Enter")
    assert "None" not in refused.wait_for("! 422 validation_error: ")


def test_a_session_name_the_api_refuses_is_refused_in_words(chat, api, user):
    # Given a chat
    terminal = chat("first")
    terminal.wait_for("/help for commands")
    # When the user switches to names the API's session id rule refuses
    terminal.type("/session bad name!", "Enter")
    terminal.wait_for("! not a session name: 'bad name!'")
    terminal.type("/session a.b", "Enter")
    terminal.wait_for("! not a session name: 'a.b'")
    # Then no traceback, and the chat stays on its session and still works
    terminal.type("hello there", "Enter")
    screen = terminal.wait_for("you said: hello there")
    assert "Traceback" not in screen and "session a.b on" not in screen
    assert api.get("/sessions/first/messages", headers=as_user(user)).status_code == 200
    # And a bad SESSION at start is refused the same way, before anything is sent
    started = chat("bad.id")
    assert "! not a session name: 'bad.id'" in started.wait_for("[chat exited: 1]")


def test_at_start_no_server_and_no_identity_are_told_apart_from_a_new_session(chat):
    # No server on the endpoint: say so and how to start one, not "new session"
    nowhere = chat("trip", ENDPOINT=f"http://127.0.0.1:{free_port()}")
    screen = nowhere.wait_for("[chat exited: 1]")
    assert "cannot reach" in screen and "make dev" in screen and ", new" not in screen
    # No identity: 401, and what to set
    anonymous = chat("trip", CHAT_USER="")
    screen = anonymous.wait_for("[chat exited: 1]")
    assert "401 unauthorized" in screen and "CHAT_USER" in screen and ", new" not in screen


def test_the_chat_user_is_the_readme_tours_user(chat, api):
    # Given the README's tour, which stores alice's facts
    (tour_user,) = re.findall(r"H='X-Local-User: (\w+)'", (ROOT / "README.md").read_text())
    key = f"chat-check-{uuid.uuid4().hex[:8]}"
    api.put(f"/memory/{key}", json={"value": "from the tour"}, headers=as_user(tour_user))
    try:
        # When `make chat` starts without CHAT_USER
        terminal = chat(f"s-{uuid.uuid4().hex[:8]}", CHAT_USER=None)
        terminal.wait_for("/help for commands")
        terminal.type("/facts", "Enter")
        # Then it is the same user: the tour's facts are there
        terminal.wait_for(f"{key} = from the tour")
    finally:
        api.delete(f"/memory/{key}", headers=as_user(tour_user))


def test_a_running_turn_is_polled_with_backoff():
    intervals = list(itertools.islice(poll_intervals(), 6))
    assert intervals[0] == FIRST_POLL_SECONDS == 0.5 and max(intervals) == MAX_POLL_SECONDS == 2.0
    assert intervals == sorted(intervals) and intervals[-1] == MAX_POLL_SECONDS


class ThrottlingApi(BaseHTTPRequestHandler):
    """An API that throttles one request of each kind, as API Gateway does past its limit (429,
    Retry-After: 1), and runs one turn that takes a few polls; it records every request."""

    requests: list[tuple[float, str, str, int]] = []  # (time, method, path, status)
    throttled: set[str] = set()
    polls = 0
    idempotency_keys: list[str] = []  # of every POST

    def answer(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        ThrottlingApi.requests.append((time.monotonic(), self.command, self.path, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        data = json.dumps(body or {}).encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def throttle_once(self, kind: str) -> bool:
        if kind in ThrottlingApi.throttled:
            return False
        ThrottlingApi.throttled.add(kind)
        self.answer(429, {"message": "Too Many Requests"}, {"Retry-After": "1"})
        return True

    def do_GET(self):
        if "/messages" in self.path:
            self.throttle_once("history") or self.answer(404, {"error": "not_found", "message": "no such session"})
            return
        ThrottlingApi.polls += 1
        if ThrottlingApi.polls == 2 and self.throttle_once("poll"):
            return
        done = ThrottlingApi.polls >= 4
        self.answer(200, {"session_id": "s", "turn_id": "t1", "status": "done" if done else "running",
                          "reply": "the whole answer" if done else "the whole",
                          "context": {"turns": 1, "summary": False, "facts": 0}, "memory": {"write": "ok"}})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        ThrottlingApi.idempotency_keys.append(self.headers["Idempotency-Key"])
        self.throttle_once("post") or self.answer(202, {"session_id": "s", "turn_id": "t1", "status": "running"})

    def log_message(self, *args):
        pass


@pytest.fixture
def throttling_api():
    ThrottlingApi.requests, ThrottlingApi.throttled, ThrottlingApi.polls, ThrottlingApi.idempotency_keys = [], set(), 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ThrottlingApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.waits  # the throttle's Retry-After
def test_a_throttled_chat_waits_as_told_and_never_abandons_a_running_turn(chat, throttling_api):
    # Given an API that throttles the first look at the session, the message and a poll of its turn
    terminal = chat("s", ENDPOINT=throttling_api, TOKEN="t0k3n")
    terminal.wait_for("/help for commands")
    # When the user sends a message
    terminal.type("hello", "Enter")
    # Then the turn is followed to its end: the whole reply and its context line
    screen = terminal.wait_for("memory write ok")
    assert "agent> the whole answer" in screen and "! 429" not in screen
    # And every request after a 429 waited its Retry-After; the message was sent again with its key
    requests = ThrottlingApi.requests
    for (when, *_, status), (next_when, *_) in zip(requests, requests[1:]):
        if status == 429:
            assert next_when - when >= 1
    keys = ThrottlingApi.idempotency_keys
    assert len(keys) == 2 and keys[0] == keys[1]
    # And the turn's polls came at least FIRST_POLL_SECONDS apart
    polls = [when for when, method, path, _ in requests if "/turns/" in path]
    assert len(polls) == 4 and all(b - a >= FIRST_POLL_SECONDS for a, b in zip(polls, polls[1:]))
