"""`make chat` in a real terminal (tmux): line editing, slash commands, resume, errors."""

import shutil
import subprocess
import sys
import time
import uuid

import pytest

from client import as_user
from local.dynamodb import ROOT

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
        variables = {"ENDPOINT": server_url, "CHAT_USER": user, "SESSION": session, "HOME": str(tmp_path),
                     "PYTHONPATH": "functions:.", **env}
        command = " ".join(f"{k}={v}" for k, v in variables.items()) + f" {sys.executable} -m local.chat"
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
    anonymous.type("hi", "Enter")
    assert "None" not in anonymous.wait_for("! 401 unauthorized: Unauthorized")
    refused = chat("bad.id")
    refused.type("hi", "Enter")
    assert "None" not in refused.wait_for("! 422 validation_error: ")
