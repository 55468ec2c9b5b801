"""A terminal chat with the agent: the local server by default, or any endpoint with a bearer token.

    make chat                                    # http://127.0.0.1:3000 as X-Local-User: local-user
    SESSION=trip make chat                       # resume a session: its last turns are shown first
    ENDPOINT=https://... TOKEN=eyJ... make chat  # a deployed stack, with a Cognito id token

Lines starting with / are commands for this client, never sent to the model (/help lists them).
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

HISTORY_FILE = Path.home() / ".agent_chat_history"
RESUME_MESSAGES = 6  # the last three turns: a user message and a reply each
REQUEST_TIMEOUT_SECONDS = 60
# How often a running turn is polled: the server refreshes its partial reply about once a second.
POLL_SECONDS = 0.3
HELP = """commands (never sent to the model):
  /help            this list
  /history         every message of this session
  /session NAME    switch to session NAME (its last turns are shown)
  /sessions        your sessions, newest first
  /facts           what the agent remembers about you
  /forget KEY      forget one fact
  /quit            leave (Ctrl-D works too)"""


class ApiError(Exception):
    pass


class Client:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        auth = {"Authorization": f"Bearer {os.environ['TOKEN']}"} if os.environ.get("TOKEN") else {
            "X-Local-User": os.environ.get("CHAT_USER", "local-user")
        }
        self.headers = {"Content-Type": "application/json", **auth}

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method,
                                         headers={**self.headers, **(headers or {})},
                                         data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                raw = response.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            raise ApiError(describe_error(error.code, error.read())) from None
        except urllib.error.URLError as error:
            raise ApiError(f"cannot reach {self.endpoint}: {error.reason} (is `make dev` running?)") from None

    def history(self, session: str) -> list[dict]:
        messages, token = [], None
        while True:
            query = urllib.parse.urlencode({"limit": 100, **({"next_token": token} if token else {})})
            page = self.call("GET", f"/sessions/{session}/messages?{query}")
            messages += page["messages"]
            if not (token := page.get("next_token")):
                return messages


def describe_error(status: int, raw: bytes) -> str:
    """Both error shapes: the agent's {"error", "message"} and API Gateway's own {"message"}."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if status == 401:
        hint = "set TOKEN to a fresh id token" if os.environ.get("TOKEN") else "set CHAT_USER"
        return f"{status} unauthorized: {body.get('message', 'no identity')} ({hint})"
    code = body.get("error") or "from API Gateway"
    return f"{status} {code}: {body.get('message') or raw[:200].decode(errors='replace')}"


def show(messages: list[dict]) -> None:
    for message in messages:
        content = message["content"]
        text = content if isinstance(content, str) else " ".join(
            block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text")
        if text:
            print(f"{'you' if message['role'] == 'user' else 'agent'}> {text}")


class Chat:
    def __init__(self, client: Client, session: str):
        self.client, self.session = client, session

    def enter(self, session: str) -> None:
        self.session = session
        try:
            earlier = self.client.history(session)
        except ApiError:
            earlier = []  # a new session: nothing stored yet (404)
        print(f"session {session} on {self.client.endpoint}" + (f", {len(earlier)} messages so far" if earlier else ", new"))
        show(earlier[-RESUME_MESSAGES:])

    def command(self, line: str) -> bool:
        """Runs a /command; False when it is time to leave."""
        name, _, argument = line[1:].strip().partition(" ")
        argument = argument.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "session" and argument:
            self.enter(argument)
        elif name == "history":
            show(self.client.history(self.session))
        elif name == "sessions":
            for s in self.client.call("GET", "/sessions")["sessions"]:
                print(f"  {s['session_id']}" + ("  (this one)" if s["session_id"] == self.session else ""))
        elif name == "facts":
            facts = self.client.call("GET", "/memory")["facts"]
            print("\n".join(f"  {key} = {value}" for key, value in sorted(facts.items())) or "  (no facts)")
        elif name == "forget" and argument:
            self.client.call("DELETE", f"/memory/{urllib.parse.quote(argument, safe='')}")
            print(f"  forgot {argument}")
        else:
            print(HELP)
        return True

    def say(self, message: str) -> None:
        """Every turn is asynchronous (Prefer: respond-async): the reply is printed as it grows."""
        accepted = self.client.call("POST", f"/sessions/{self.session}/messages", {"message": message},
                                    {"Prefer": "respond-async"})
        body = self.follow(accepted["turn_id"])
        context = body["context"]
        if body.get("truncated"):
            print("       [the answer was cut off: the turn ran out of time]")
        print(f"       [context: {context['turns']} turns, {context['facts']} facts, "
              f"summary {'yes' if context['summary'] else 'no'}; memory write {body['memory']['write']}]")

    def follow(self, turn_id: str) -> dict:
        """Polls the running turn, printing its reply as it grows; returns the finished answer."""
        shown = ""
        print("agent> ", end="", flush=True)
        while True:
            body = self.client.call("GET", f"/sessions/{self.session}/turns/{turn_id}")
            reply = body.get("reply") or ""
            if reply != shown:
                # A later tool round may start the reply over: then it is printed anew.
                print(reply[len(shown):] if reply.startswith(shown) else f"\n       {reply}", end="", flush=True)
                shown = reply
            if body["status"] != "running":
                print()
                if body["status"] == "failed":
                    raise ApiError(f"{body['error']}: {body['message']}")
                return body
            time.sleep(POLL_SECONDS)


def lines():
    """Typed lines with line editing and a history kept across runs; piped input as it comes."""
    if not sys.stdin.isatty():
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    import readline

    try:
        readline.read_history_file(HISTORY_FILE)
    except OSError:
        pass
    try:
        while True:
            yield input("you> ")
    except EOFError:
        print()
    finally:
        readline.write_history_file(HISTORY_FILE)


def main() -> None:
    endpoint = os.environ.get("ENDPOINT", f"http://127.0.0.1:{os.environ.get('PORT', '3000')}").rstrip("/")
    chat = Chat(Client(endpoint), "")
    chat.enter(os.environ.get("SESSION", f"chat-{uuid.uuid4().hex[:8]}"))
    print("/help for commands, Ctrl-D to quit")
    for line in lines():
        if not line.strip():
            continue
        try:
            if line.startswith("/"):
                if not chat.command(line):
                    return
            else:
                chat.say(line)
        except ApiError as error:
            print(f"! {error}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print()
